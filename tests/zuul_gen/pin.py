"""The one Zuul release whose reporter writes tests/data/zuul-<ZUUL_VERSION>/.

Changing it means a new directory next to the old one, not new bytes in the old one: the
corpus of a release is what that release sends, and the bridge must keep decoding it."""

ZUUL_VERSION = "14.3.0"
DATA_DIR = "tests/data/zuul-" + ZUUL_VERSION
