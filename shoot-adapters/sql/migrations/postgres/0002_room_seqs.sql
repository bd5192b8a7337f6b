-- Per-room sequence counters for message logs that cannot number records themselves (Kafka):
-- the highest seq ever handed out in each room.
CREATE TABLE room_seqs (
    room_id  BIGINT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);
