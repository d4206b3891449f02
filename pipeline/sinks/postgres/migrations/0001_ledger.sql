-- The reward ledger: every fact of the rewards topic, once, keyed by (reward_id, revision).
CREATE TABLE reward_ledger (
    reward_id              text        NOT NULL,
    revision               integer     NOT NULL CHECK (revision >= 0),
    kind                   text        NOT NULL CHECK (kind IN ('attribution', 'correction', 'refund', 'final',
                                                               'unattributed')),
    user_id                text        NOT NULL,
    conversion_id          text,
    touchpoint_id          text        NOT NULL,
    episode_id             text        NOT NULL,
    campaign_id            text        NOT NULL,
    channel                text        NOT NULL,
    model                  text,
    amount_minor           bigint      NOT NULL,
    base_currency          char(3)     NOT NULL CHECK (base_currency ~ '^[A-Z]{3}$'),
    currency               char(3)     CHECK (currency ~ '^[A-Z]{3}$'),
    local_amount_minor     bigint,
    conversion_value_minor bigint,
    original_reward        double precision NOT NULL,
    touch_time             timestamptz NOT NULL,
    conversion_time        timestamptz,
    position               integer,
    journey_length         integer,
    event                  text,
    reason                 text,
    kafka_partition        integer     NOT NULL,
    kafka_offset           bigint      NOT NULL,
    kafka_time             timestamptz NOT NULL,  -- when the record entered the topic
    written_at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (reward_id, revision)
);

-- Current state: the latest revision of every (user, conversion or refund, touchpoint) pair.
CREATE TABLE reward_current (
    user_id         text        NOT NULL,
    conversion_id   text        NOT NULL,
    touchpoint_id   text        NOT NULL,
    revision        integer     NOT NULL,
    kind            text        NOT NULL,
    model           text,
    episode_id      text        NOT NULL,
    campaign_id     text        NOT NULL,
    channel         text        NOT NULL,
    amount_minor    bigint      NOT NULL,
    base_currency   char(3)     NOT NULL,
    touch_time      timestamptz NOT NULL,
    conversion_time timestamptz,
    event           text,
    PRIMARY KEY (user_id, conversion_id, touchpoint_id)
);

-- The final total of every touchpoint whose window closed.
CREATE TABLE touchpoint_final (
    user_id       text        NOT NULL,
    touchpoint_id text        NOT NULL,
    episode_id    text        NOT NULL,
    campaign_id   text        NOT NULL,
    channel       text        NOT NULL,
    amount_minor  bigint      NOT NULL,
    base_currency char(3)     NOT NULL,
    touch_time    timestamptz NOT NULL,
    PRIMARY KEY (user_id, touchpoint_id)
);

-- Conversions said to pay nobody, at their latest revision (a later split may still pay them).
CREATE TABLE conversion_unattributed (
    user_id         text        NOT NULL,
    conversion_id   text        NOT NULL,
    revision        integer     NOT NULL,
    reason          text,
    event           text,
    model           text,
    conversion_time timestamptz NOT NULL,
    value_minor     bigint,
    currency        char(3),
    PRIMARY KEY (user_id, conversion_id)
);

-- Every touchpoint a fact has named, so that the ones without a final are the open ones.
CREATE TABLE touchpoint_seen (
    user_id       text        NOT NULL,
    touchpoint_id text        NOT NULL,
    episode_id    text        NOT NULL,
    campaign_id   text        NOT NULL,
    channel       text        NOT NULL,
    touch_time    timestamptz NOT NULL,
    PRIMARY KEY (user_id, touchpoint_id)
);

-- The sink's consumed offsets, written in the transaction of the facts they cover: the sink resumes here.
CREATE TABLE sink_offsets (
    sink        text    NOT NULL,
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (sink, topic, partition)
);

-- Records the sink could not store, with the reason; the sink goes on past them.
CREATE TABLE sink_dead_letters (
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    reason      text        NOT NULL,
    payload     bytea,
    written_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (topic, partition, "offset")
);
