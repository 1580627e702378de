-- Version 4: recipients' counts on UPDATE move to a row-level trigger that
-- fires only when status or list changes.  The statement-level trigger ran
-- (with its transition tables) for every UPDATE, even one that renames a
-- recipient: an upsert import of 30,000 rows spent most of its time there.
-- INSERT and DELETE keep their statement-level triggers (bulk imports,
-- cascades).  The net effect is unchanged: +1/-1 per changed row.
DROP TRIGGER recipients_count_upd ON recipients;
DROP FUNCTION recipients_count_upd();

CREATE FUNCTION recipients_count_upd_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE recipient_lists
       SET recipient_count = recipient_count - 1,
           active_count = active_count - (OLD.status = 'active')::int
     WHERE id = OLD.recipient_list_id;
    UPDATE recipient_lists
       SET recipient_count = recipient_count + 1,
           active_count = active_count + (NEW.status = 'active')::int
     WHERE id = NEW.recipient_list_id;
    RETURN NULL;
END $$;

CREATE TRIGGER recipients_count_upd AFTER UPDATE OF status, recipient_list_id ON recipients
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.recipient_list_id IS DISTINCT FROM NEW.recipient_list_id)
    EXECUTE FUNCTION recipients_count_upd_row();
