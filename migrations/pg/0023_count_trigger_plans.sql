-- Version 23: the campaign counters' UPDATE trigger plans its statement
-- with nested loops allowed, whatever the statement that fires it set.  The
-- 'sent' flush turns nested loops off for itself (store_delivery.c); PL/pgSQL
-- plans the trigger's UPDATE once per connection, on its first firing, and
-- keeps that plan, so a first firing inside the flush left the connection
-- with a hash join over every campaign for all later status changes.
ALTER FUNCTION scheduled_messages_count_upd() SET enable_nestloop = on;
