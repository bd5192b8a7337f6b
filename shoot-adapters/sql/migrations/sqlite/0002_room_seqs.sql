-- Per-room sequence counters for message logs that cannot number records themselves (Kafka):
-- the highest seq ever handed out in each room.
CREATE TABLE room_seqs (
    room_id  INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
