/* chatops_rooms: the one fact about a room that /sync does not reliably give: its create
 * event (Synapse leaves it out of filtered state in version 12 rooms, whose creators
 * outrank every power level), read once per room with GET .../state/m.room.create/. */
#include "chatops_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "matrix.h"

static void fetch_next(struct chatops *c);

static void set_create_event(struct room_state *rs, const cJSON *ev)
{
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(ev, "content");
	const char *sender = chatops_str_at(ev, "sender");
	const char *creator = chatops_str_at(content, "creator") ? chatops_str_at(content, "creator") : sender;
	free(rs->creator);
	rs->creator = creator ? xstrdup(creator) : NULL;
	cJSON_Delete(rs->create_content);
	rs->create_content = cJSON_IsObject(content) ? cJSON_Duplicate(content, 1) : NULL;
}

void chatops_room_create_event(struct room_state *rs, const cJSON *ev)
{
	set_create_event(rs, ev);
	rs->create_known = true;
}

static void on_create_event(const struct matrix_response *r, void *data)
{
	struct chatops *c = data;
	char *room_id = c->create_fetching;
	c->create_fetching = NULL;
	struct room_state *rs = chatops_room_by_id(c, room_id);
	if (rs && r->status == 200 && cJSON_IsObject(r->json)) {
		chatops_room_create_event(rs, r->json);
	} else if (rs) {
		/* Without it the room still works: only version 12 creators lose their rank. */
		rs->create_known = true;
		char status[16];
		snprintf(status, sizeof status, "%ld", r->status);
		log_kv(ZLOG_WARN, "cannot read the room's create event; its creators count by power level only", "room",
		       rs->room, "status", status, "errcode", r->errcode, NULL);
	}
	free(room_id);
	fetch_next(c);
}

/* One request at a time: rooms are few, and a single pending id is easy to own. */
static void fetch_next(struct chatops *c)
{
	if (c->create_fetching)
		return;
	for (size_t i = 0; i < c->n_rooms; i++) {
		struct room_state *rs = &c->rooms[i];
		if (rs->create_known)
			continue;
		if (!c->create_client)
			c->create_client = matrix_client_new(c->loop, &c->conn->matrix);
		char *room_q = matrix_escape_segment(rs->room_id);
		struct strbuf path = STRBUF_INIT;
		strbuf_printf(&path, "/_matrix/client/v3/rooms/%s/state/m.room.create/?format=event", room_q);
		free(room_q);
		c->create_fetching = xstrdup(rs->room_id);
		if (!c->create_client ||
		    matrix_request(c->create_client, "GET", strbuf_str(&path), NULL, on_create_event, c) != 0) {
			free(c->create_fetching);
			c->create_fetching = NULL;
			rs->create_known = true; /* could not even start: as after an error answer */
			strbuf_free(&path);
			continue;
		}
		strbuf_free(&path);
		return;
	}
}

void chatops_rooms_fetch_facts(struct chatops *c)
{
	fetch_next(c);
}

void chatops_rooms_free(struct chatops *c)
{
	matrix_client_free(c->create_client);
	c->create_client = NULL;
	free(c->create_fetching);
	c->create_fetching = NULL;
}
