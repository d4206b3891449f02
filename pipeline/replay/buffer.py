"""The replay-buffer sink: a background consumer that joins the touchpoint and attributed-reward topics
into an :class:`ExperienceTable`, and hands trainers numpy batches.

Each trainer has its own consumer group (``group``), so trainers never share or steal partitions. With a
``path`` the state and the offsets it reflects are stored together in RocksDB, so a restarted trainer gets
its buffer back and resumes exactly there. Without one, the buffer is rebuilt from the start of the topics.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.attribution.delay_model import DelayModel
from pipeline.events.avro import AvroCodec, DecodeError, reward_from_record, touchpoint_from_record
from pipeline.events.types import AttributedReward
from pipeline.kafka.clients import consumer_config, drain, group_liveness
from pipeline.kafka.schema_registry import wire_format
from pipeline.replay.experiences import ExperienceTable
from pipeline.replay.provisional import Feature
from pipeline.replay.samplers import Priorities
from pipeline.replay.store import ReplayStore
from pipeline.settings import Settings

log = logging.getLogger("rewardstream.replay")

Batch = dict[str, npt.NDArray[Any]]


class ReplayBuffer:
    """Corrected experiences for a trainer.

    ``capacity``: experiences kept (oldest evicted). ``prioritized``: sample with P ∝ priority^α (new and
    re-rewarded experiences get the largest priority so far, until the trainer sets |TD error| with
    :meth:`update_priorities`) and return importance ``weights``. ``priorities``: α, β and its annealing, and
    how weights are normalized (``Priorities``: by the buffer's largest weight unless told "batch").
    ``final_only``: default for :meth:`sample`, draw only experiences whose reward will not change again.
    ``min_samples``: :meth:`sample` waits until the buffer holds this many. ``path``: RocksDB directory for restarts."""

    def __init__(self, settings: Settings, *, group: str = "trainer", capacity: int = 1_000_000,
                 path: str | Path | None = None, prioritized: bool = False, priorities: Priorities | None = None,
                 final_only: bool = False, min_samples: int = 0, seed: int | None = None,
                 poll_batch: int = 5000, max_pending: int | None = None) -> None:
        self.settings = settings
        self.group = f"rewardstream-replay-{group}"
        self.final_only = final_only
        self.min_samples = min_samples
        self.prioritized = prioritized
        self.poll_batch = poll_batch
        self.table = ExperienceTable(capacity, (priorities or Priorities()) if prioritized else None,
                                     final_only_priorities=final_only, max_pending=max_pending)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._grew = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._store = ReplayStore(path) if path is not None else None
        self._offsets: dict[tuple[str, int], int] = {}
        self._high: dict[tuple[str, int], int] = {}
        self._partitions: frozenset[tuple[str, int]] = frozenset()  # the consumer's current assignment
        self._assigned = False
        self.skipped_records = 0
        self._listeners: list[Callable[[AttributedReward], None]] = []
        self._wire = wire_format(settings)
        if self._store is not None:
            self._restore()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ReplayBuffer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="rewardstream-replay", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> ReplayBuffer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ trainer API

    def __len__(self) -> int:
        return self.table.size

    def sample(self, batch_size: int, *, final_only: bool | None = None, with_ids: bool = False,
               timeout: float | None = None, tensors: bool = False, device: Any = None) -> dict[str, Any]:
        """A batch as a dict of arrays: ``states``/``actions`` (2-D float32 when every value is a numeric
        vector of one length, else object arrays of JSON values), ``attributed_reward``,
        ``original_reward``, ``final``, ``delay_seconds``, ``channel`` (codes into :attr:`channel_names`),
        ``index`` (experience ids for :meth:`update_priorities`), ``expected_reward`` (the delay model's
        estimate, 0 without one: see :meth:`set_delay_model`), ``reward`` and ``reward_source`` (per row the
        final amount, else the attributed amount so far, else the expected reward: ``RewardSource``); with
        prioritized sampling ``weights``;
        with ``with_ids`` also ``touchpoint_ids``, ``episode_ids``, ``user_ids``, ``channels`` (object
        arrays, built per row). Waits up to ``timeout`` for ``min_samples``. With ``tensors`` (needs torch) the
        numeric columns are torch tensors (on ``device`` if given; zero-copy on the CPU)."""
        batch = self._sample(batch_size, final_only, with_ids, timeout)
        if tensors or device is not None:
            from pipeline.replay.tensors import to_tensors

            return to_tensors(batch, device)
        return batch

    def _sample(self, batch_size: int, final_only: bool | None, with_ids: bool, timeout: float | None) -> Batch:
        final_only = self.final_only if final_only is None else final_only
        with self._grew:
            self._raise_if_failed()
            if self.table.size < self.min_samples:
                if not self._grew.wait_for(lambda: self.table.size >= self.min_samples or self._error is not None,
                                           timeout):
                    raise TimeoutError(f"buffer holds {self.table.size} experiences, fewer than min_samples="
                                       f"{self.min_samples}")
                self._raise_if_failed()
            if self.prioritized:
                if final_only != self.final_only:
                    raise ValueError("a prioritized buffer's final_only is fixed at construction")
                slots, weights = self.table.draw_prioritized(self._rng, batch_size)
                batch = self.table.take(slots, with_ids)
                batch["weights"] = weights
                return batch
            return self.table.take(self.table.draw_uniform(self._rng, batch_size, final_only), with_ids)

    def add_reward_listener(self, listener: Callable[[AttributedReward], None]) -> None:
        """Call ``listener`` with every attributed reward read (on the consumer thread: keep it quick)."""
        self._listeners.append(listener)

    @property
    def channel_names(self) -> list[str]:
        """Names of the ``channel`` codes in a batch."""
        return list(self.table.channel_names)

    def set_delay_model(self, model: DelayModel | None, feature: Feature | None = None) -> None:
        """Provisional rewards: ``expected_reward`` of rows nothing has credited yet, from ``model`` (fitted by
        ``rewardstream fit``, or by a trainer on the buffer's own columns), keyed by channel, campaign and
        ``feature(state)`` when given; it falls as the buffer's event time passes each row's touch."""
        with self._lock:
            self.table.set_delay_model(model, feature)

    def update_priorities(self, index: Sequence[int] | npt.NDArray[Any],
                          priorities: Sequence[float] | npt.NDArray[Any]) -> int:
        """Set priorities (e.g. |TD error|) for a batch's ``index``; returns how many are still held."""
        with self._lock:
            return self.table.set_priorities(index, priorities)

    def columns(self) -> Batch:
        """Every held experience as arrays (copies), for analysis and for batch learners that refit on
        all their data: the :meth:`sample` columns plus ``campaign_ids``, ``touch_time_ms``,
        ``first_credit_ms`` (the first conversion that paid it, −1: none yet) and ``attributed_minor`` /
        ``final_minor`` (exact, base currency minor units; what a delay model is fitted on)."""
        with self._lock:
            return self.table.columns()

    def set_beta(self, beta: float) -> None:
        """The importance-weight exponent β from now on (for a trainer's own schedule; see ``Priorities``
        for linear annealing)."""
        if self.table.sampler is None:
            raise RuntimeError("this buffer was created without prioritized sampling")
        with self._lock:
            self.table.sampler.set_beta(beta)

    @property
    def beta(self) -> float | None:
        """The current β of a prioritized buffer (None otherwise)."""
        return None if self.table.sampler is None else self.table.sampler.beta

    @property
    def event_time_ms(self) -> int:
        """The buffer's event time: the newest touchpoint time it has seen (provisional rewards age by it)."""
        return int(self.table.provisional.clock_ms)

    def experience(self, touchpoint_id: str, user_id: str | None = None) -> dict[str, Any] | None:
        """A held experience (ids are scoped by user; without ``user_id``, the first one held with this id)."""
        with self._lock:
            return self.table.experience(touchpoint_id, user_id)

    def journey(self, user_id: str) -> list[dict[str, Any]]:
        """The user's experiences held, oldest touch first."""
        with self._lock:
            return [self.table.row(int(s)) for s in self.table.slots_of_user(user_id)]

    def statistics(self) -> dict[str, Any]:
        with self._lock:
            stats = self.table.statistics()
        stats["skipped_records"] = self.skipped_records
        stats["lag"] = self.lag()
        return stats

    def lag(self) -> int:
        """Records on the input topics not yet read (from the last high watermarks seen)."""
        high, offsets = dict(self._high), dict(self._offsets)  # copies: the consumer thread adds keys
        return sum(max(0, h - offsets.get(tp, 0)) for tp, h in high.items())

    def caught_up(self) -> bool:
        """True once every assigned partition has been read to its high watermark."""
        partitions = self._partitions
        return self._assigned and bool(partitions) and partitions <= self._high.keys() and self.lag() == 0

    def wait_until_caught_up(self, timeout: float = 60.0, settle: float = 0.0) -> bool:
        """Block until :meth:`caught_up` (and has stayed so for ``settle`` seconds)."""
        end = time.monotonic() + timeout
        since: float | None = None
        while time.monotonic() < end:
            self._raise_if_failed()
            if self.caught_up():
                since = since or time.monotonic()
                if time.monotonic() - since >= settle:
                    return True
            else:
                since = None
            time.sleep(0.05)
        return False

    # ------------------------------------------------------------------ consumer thread

    def _restore(self) -> None:
        assert self._store is not None
        rows, pending, offsets, meta = self._store.load()
        evicted = self.table.restore(rows, pending, meta.get("counters", {}))
        if evicted:
            self._store.write([], evicted, {}, {})
        self._offsets = offsets
        log.info("replay buffer restored %d experiences, %d waiting rewards, %d offsets",
                 len(rows), len(pending), len(offsets))

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

        s = self.settings
        # A buffer that resumes at the end of its partitions (offsets restored from its store) got its first
        # records only when the broker's long poll ran out, whatever arrived meanwhile: fetch.wait.max.ms bounds
        # that wait for trigger_attribution's first answer (see docs/benchmarks.md).
        consumer = Consumer(consumer_config(s, self.group, **{
            "fetch.max.bytes": 52428800, "fetch.wait.max.ms": 100,
            # a restarted trainer waits the session timeout for its crashed predecessor's partitions (librdkafka's
            # default is 45 s)
            **group_liveness(s)}))
        tp_codec, rw_codec = AvroCodec("touchpoint"), AvroCodec("attributed_reward")

        def on_assign(c: Any, partitions: list[Any]) -> None:
            for p in partitions:
                stored = self._offsets.get((p.topic, p.partition))
                p.offset = stored if stored is not None else OFFSET_BEGINNING
            c.assign(partitions)
            self._partitions = frozenset((p.topic, p.partition) for p in partitions)
            self._assigned = True

        try:
            consumer.subscribe([s.topic_touchpoints, s.topic_rewards], on_assign=on_assign)
            while not self._stop.is_set():
                msgs = drain(consumer, self.poll_batch, 0.2)  # at once when records are there
                self._refresh_high_watermarks(consumer, TopicPartition)
                if not msgs:
                    continue
                applied = self._apply(msgs, s.topic_touchpoints, tp_codec, rw_codec)
                # For lag monitoring only: restarts seek to the offsets stored with the state (or the start).
                consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in applied.items()],
                                asynchronous=True)
        except BaseException as exc:  # surfaced to the trainer by the next sample()
            log.exception("replay buffer consumer failed")
            with self._grew:
                self._error = exc
                self._grew.notify_all()
        finally:
            with contextlib.suppress(KafkaException):
                consumer.close()

    def _apply(self, msgs: list[Any], topic_touchpoints: str, tp_codec: AvroCodec, rw_codec: AvroCodec
               ) -> dict[tuple[str, int], int]:
        """Fold a poll's records in; returns the next offset per partition they reached."""
        offsets: dict[tuple[str, int], int] = {}
        with self._grew:
            for msg in msgs:
                if msg.error():
                    continue
                topic, value = msg.topic(), msg.value()
                offsets[(topic, msg.partition())] = msg.offset() + 1
                if value is None:
                    continue
                try:
                    value = self._wire.inbound(value)
                    if topic == topic_touchpoints:
                        self.table.add_touchpoint(touchpoint_from_record(tp_codec.decode(value)))
                    else:
                        reward = reward_from_record(rw_codec.decode(value))
                        self.table.apply_reward(reward)
                        for listener in self._listeners:
                            listener(reward)
                except (DecodeError, KeyError, ValueError) as exc:
                    # The worker dead-letters bad input; here it is only counted.
                    self.skipped_records += 1
                    log.debug("skipped record %s[%d]@%d: %s", topic, msg.partition(), msg.offset(), exc)
            if self._store is not None:
                rows, removed, pending = self.table.take_changes()
                self._store.write(rows, removed, pending, offsets, {"counters": self.table.counters()})
            else:
                self.table.discard_changes()
            self._offsets.update(offsets)
            self._grew.notify_all()
        return offsets

    def _refresh_high_watermarks(self, consumer: Any, topic_partition: Any) -> None:
        """End offsets as this consumer's own fetches last saw them: librdkafka keeps each fetch response's end
        offset (the last stable one, read_committed) and log start, so this asks the broker nothing. A query per
        partition would queue behind the connection's long-polling fetch (``fetch.wait.max.ms``) every time,
        and this thread, which hands rewards to ``trigger_attribution``, stood still meanwhile."""
        for tp in consumer.assignment():
            low, high = consumer.get_watermark_offsets(topic_partition(tp.topic, tp.partition), cached=True)
            if high < 0:  # no fetch response for the partition yet: its end is not known
                continue
            key = (tp.topic, tp.partition)
            self._high[key] = high
            if self._offsets.get(key, -1) < low:  # nothing below the log start is left to read
                self._offsets[key] = low

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"replay buffer consumer failed: {self._error!r}") from self._error
