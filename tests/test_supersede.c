/* Tests of supersede: which queued edit may be left unsent because a newer edit of the
 * same message waits behind it, and which never may (pings, other messages, non-edits). */
#include "supersede.h"

#include <cjson/cJSON.h>

#include "relations.h"
#include "strbuf.h"
#include "test.h"

/* A silent edit of event_id (or, with txn, of the message queued as that transaction). */
static char *edit_json(const char *event_id, const char *txn, const char *ping)
{
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "msgtype", ping ? "m.text" : "m.notice");
	cJSON_AddStringToObject(c, "body", "* edited");
	cJSON *ids = cJSON_AddArrayToObject(cJSON_AddObjectToObject(c, "m.mentions"), "user_ids");
	if (ping)
		cJSON_AddItemToArray(ids, cJSON_CreateString(ping));
	cJSON_AddObjectToObject(c, "m.new_content");
	cJSON *rel = cJSON_AddObjectToObject(c, "m.relates_to");
	cJSON_AddStringToObject(rel, "rel_type", "m.replace");
	if (event_id)
		cJSON_AddStringToObject(rel, "event_id", event_id);
	if (txn)
		relations_point_at_txn(c, txn);
	char *json = cJSON_PrintUnformatted(c);
	cJSON_Delete(c);
	return json;
}

static const char report_json[] = "{\"msgtype\":\"m.notice\",\"body\":\"Build failed.\",\"m.mentions\":{}}";
static const char thread_json[] =
	"{\"msgtype\":\"m.notice\",\"body\":\"again\",\"m.mentions\":{},"
	"\"m.relates_to\":{\"rel_type\":\"m.thread\",\"event_id\":\"$root\"}}";

/* The store's view: txn "zmb.root" was delivered as $root, "zmb.later" not yet. */
static char *lookup(const char *txn, void *data)
{
	(void)data;
	return strcmp(txn, "zmb.root") == 0 ? xstrdup("$root") : NULL;
}

static const char *later_at(size_t i, void *data)
{
	return ((const char **)data)[i];
}

static bool stale(const char *head, const char *a, const char *b)
{
	const char *later[2] = {a, b};
	return supersede_is_stale(head, later_at, b ? 2 : a ? 1 : 0, lookup, later);
}

static void test_a_newer_silent_edit_of_the_same_message_supersedes(void)
{
	char *e1 = edit_json("$root", NULL, NULL), *e2 = edit_json("$root", NULL, NULL);
	CHECK(stale(e1, report_json, e2));
	CHECK(!stale(e2, report_json, thread_json)); /* the newest edit goes out */
	CHECK(!stale(e1, NULL, NULL));
	free(e1);
	free(e2);
}

static void test_edits_of_other_messages_and_other_items_do_not(void)
{
	char *e1 = edit_json("$root", NULL, NULL), *other = edit_json("$other", NULL, NULL);
	CHECK(!stale(e1, other, thread_json));
	CHECK(!stale(report_json, e1, e1)); /* a report is never dropped */
	CHECK(!stale(thread_json, e1, e1));
	free(e1);
	free(other);
}

static void test_an_edit_that_pings_is_never_dropped_nor_drops_another(void)
{
	char *silent = edit_json("$root", NULL, NULL), *ping = edit_json("$root", NULL, "@alice:localhost");
	CHECK(!stale(ping, silent, NULL));
	CHECK(!stale(silent, ping, NULL));
	free(silent);
	free(ping);
}

static void test_a_message_named_by_txn_or_by_event_id_is_the_same_message(void)
{
	char *by_txn = edit_json(NULL, "zmb.root", NULL), *by_id = edit_json("$root", NULL, NULL);
	char *pending = edit_json(NULL, "zmb.later", NULL), *pending2 = edit_json(NULL, "zmb.later", NULL);
	CHECK(stale(by_txn, by_id, NULL));
	CHECK(stale(by_id, by_txn, NULL));
	CHECK(stale(pending, pending2, NULL)); /* not delivered yet: compared by txn */
	CHECK(!stale(pending, by_id, NULL));
	free(by_txn);
	free(by_id);
	free(pending);
	free(pending2);
}

static void test_garbage_in_the_queue_is_not_an_edit(void)
{
	char *e1 = edit_json("$root", NULL, NULL);
	CHECK(!stale("{\"m.replace\"", e1, NULL));
	CHECK(!stale(e1, "not json \"m.replace\"", NULL));
	CHECK(!stale(NULL, e1, NULL));
	free(e1);
}

int main(void)
{
	RUN(test_a_newer_silent_edit_of_the_same_message_supersedes);
	RUN(test_edits_of_other_messages_and_other_items_do_not);
	RUN(test_an_edit_that_pings_is_never_dropped_nor_drops_another);
	RUN(test_a_message_named_by_txn_or_by_event_id_is_the_same_message);
	RUN(test_garbage_in_the_queue_is_not_an_edit);
	return test_done();
}
