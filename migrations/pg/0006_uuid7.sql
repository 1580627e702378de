-- Version 6: mc_uuid7(), a time-ordered (RFC 9562 version 7) id for rows
-- created in bulk, so they append to their primary-key index.  SQLite has the
-- same function from the driver (store_sqlite.c).  The leading 48 bits are
-- Unix milliseconds; bits 52 and 53 turn gen_random_uuid()'s version 4 into 7.
CREATE FUNCTION mc_uuid7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp())
                                                * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;
