"""``GET /metrics``: counters, latency histograms and process metrics (prometheus_client).

Theory of operation
-------------------
One :class:`Metrics` object per app, held in the lifespan state, with its own
:class:`prometheus_client.CollectorRegistry` (nothing global: tests run
several relays in one process). What costs on the hot path is kept small:

* per frame: a ``collections.Counter`` increment (``frames_in``,
  ``frames_out``...), turned into Prometheus counters only at scrape time by
  a collector;
* per push: one histogram observation when its ACK or REFUSE is written
  (:meth:`Metrics.push_received` / :meth:`Metrics.answer_sent`, called by
  the websocket edge in :mod:`relay.app`), one when the store made it
  durable (:class:`TimedStore`), one fan-out size per committed patch
  (``relay.hub.Hub.observe_fanout``), one batch size per group commit;
* nothing per queued frame: the outgoing queue depths of all connections are
  read at scrape time and exposed as a histogram then.

Exposed (besides ``process_*``, ``python_gc_*`` and ``python_info``):

=====================================  ========================================
``blindpad_push_ack_seconds``          PUSH read -> its ACK/REFUSE written
                                       (label ``outcome``)
``blindpad_store_append_seconds``      append handed to the store -> durable
                                       (group-commit wait, commit, fsync)
``blindpad_commit_batch_size``         writes per group commit
``blindpad_broadcast_fanout``          subscribers offered each committed patch
``blindpad_outgoing_queue_frames``     frames queued per connection (at scrape)
``blindpad_connections``               open websocket connections
``blindpad_connections_accepted``      connections accepted (counter)
``blindpad_messages_in`` / ``_out``    frames received (label ``type``) / sent
``blindpad_refusals`` / ``_errors``    refusals (``reason``) / fatal errors (``code``)
``blindpad_channels``, ...             store gauges, read at scrape time
``blindpad_node``, ``blindpad_bus_up``  relays sharing a store: this node, whether
                                       hints flow (0 = polling the store)
``blindpad_bus_dropped``               hints and ephemerals not sent on the bus
``blindpad_fill_reads`` / ``_filled_   reads of other relays' commits / patches
patches``                              they brought
=====================================  ========================================
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from relay.store.base import append_soon

if TYPE_CHECKING:
    from relay.cluster import Cluster
    from relay.store import AppendResult, Store
    from relay.verifier import Verifier

#: The ``Content-Type`` of the exposition.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Upper bounds of the commit batch size histogram.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
#: Upper bounds (seconds) of the latency histograms: 0.5 ms .. 10 s.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)
#: Upper bounds of the fan-out histogram (subscribers per committed patch).
FANOUT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)
#: Upper bounds of the outgoing queue depth histogram (frames).
QUEUE_BUCKETS = (0, 1, 4, 16, 64, 256, 1024, 4096)


class Tally:
    """A histogram kept as plain counts per label value, read at scrape time.

    prometheus_client's ``Histogram`` takes a lock and walks its buckets on
    every observation; the relay observes on its event loop only, a few
    times per push, so a bisect and two additions do.
    """

    def __init__(self, name: str, help_text: str, bounds: tuple[float, ...], label: str = ""):
        self.name, self.help, self.bounds, self.label = name, help_text, bounds, label
        self._le = [*map(repr, map(float, bounds)), "+Inf"]  # the buckets' le labels
        self._counts: dict[str, list[int]] = {}  # per label value: one per bound, then +Inf
        self._sums: dict[str, float] = {}

    def observe(self, value: float, label: str = "") -> None:
        """Count ``value`` (under ``label``'s value, for a labelled tally)."""
        counts = self._counts.get(label)
        if counts is None:
            counts = self._counts[label] = [0] * (len(self.bounds) + 1)
            self._sums[label] = 0.0
        counts[bisect.bisect_left(self.bounds, value)] += 1
        self._sums[label] += value

    def family(self) -> HistogramMetricFamily:
        """The counts so far as a metric family (cumulative buckets, as exposed)."""
        labels = [self.label] if self.label else None
        family = HistogramMetricFamily(self.name, self.help, labels=labels)
        for key, counts in sorted(self._counts.items()):
            running, buckets = 0, []
            for le, count in zip(self._le, counts, strict=True):
                running += count
                buckets.append((le, running))
            family.add_metric([key] if self.label else [], buckets, self._sums[key])
        return family


@dataclasses.dataclass(frozen=True, slots=True)
class Gauges:
    """Values read at scrape time (from the store and the hub)."""

    channels: int
    storage_bytes: int
    live_channels: int
    queue_depths: list[int]
    sqlite_synchronous: int | None = None


@dataclasses.dataclass
class Metrics:
    """The relay's metrics (see the module docstring)."""

    connections: int = 0
    connections_total: int = 0
    frames_in: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    frames_out: int = 0
    refusals: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    clock: Callable[[], float] = time.perf_counter
    cluster: Cluster | None = None
    verifier: Verifier | None = None
    registry: CollectorRegistry = dataclasses.field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.push_ack = Tally(
            "blindpad_push_ack_seconds",
            "From reading a PUSH to writing its ACK or REFUSE.",
            LATENCY_BUCKETS,
            label="outcome",
        )
        self.store_append = Tally(
            "blindpad_store_append_seconds",
            "From handing an append to the store to its durability "
            "(group-commit wait, commit, fsync).",
            LATENCY_BUCKETS,
        )
        self.fanout = Tally(
            "blindpad_broadcast_fanout",
            "Subscribers offered each committed patch (the author's ACK included).",
            FANOUT_BUCKETS,
        )
        self.batch = Tally("blindpad_commit_batch_size", "Writes per group commit.", BATCH_BUCKETS)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self._scrape: Gauges | None = None
        r.register(_Counters(self))

    def observe_batch(self, size: int) -> None:
        """Record one group commit of ``size`` writes."""
        self.batch.observe(size)

    def push_received(self, pending: dict[int, float], request_id: int) -> None:
        """A PUSH with ``request_id`` was read (``pending`` is the connection's)."""
        pending[request_id] = self.clock()

    def answer_sent(self, pending: dict[int, float], request_id: int, outcome: str) -> None:
        """The ACK or REFUSE of ``request_id`` was written; observe its latency."""
        started = pending.pop(request_id, None)
        if started is not None:
            self.push_ack.observe(self.clock() - started, outcome)

    def exposition(self, gauges: Gauges) -> bytes:
        """The text exposition, with ``gauges`` read at this scrape."""
        self._scrape = gauges
        try:
            return generate_latest(self.registry)
        finally:
            self._scrape = None


class _Counters(Collector):
    """Turns the plain counters and the scrape-time gauges into metric families."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterable[Metric]:
        m = self.m
        yield _gauge("blindpad_connections", "Open websocket connections.", m.connections)
        yield CounterMetricFamily(
            "blindpad_connections_accepted", "Connections accepted.", value=m.connections_total
        )
        yield CounterMetricFamily(
            "blindpad_messages_out", "Frames sent to clients.", value=m.frames_out
        )
        yield _labelled("blindpad_messages_in", "Frames received.", "type", m.frames_in)
        yield _labelled("blindpad_refusals", "Refusals.", "reason", m.refusals)
        yield _labelled("blindpad_errors", "Fatal errors.", "code", m.errors)
        for tally in (m.push_ack, m.store_append, m.fanout, m.batch):
            yield tally.family()
        if m.cluster is not None:
            yield from _cluster(m.cluster)
        if m.verifier is not None:
            yield from _verifier(m.verifier)
        if m._scrape is not None:
            yield from _scraped(m._scrape)


def _cluster(c: Cluster) -> Iterator[Metric]:
    yield _gauge(
        "blindpad_node", "This relay's node number among those sharing its store.", c.node
    )
    yield _gauge(
        "blindpad_bus_up", "1 while hints from other relays flow (else polling).", int(c.bus_up)
    )
    yield CounterMetricFamily(
        "blindpad_bus_dropped", "Hints and ephemerals not sent on the bus.", value=c.bus.dropped
    )
    yield CounterMetricFamily(
        "blindpad_fill_reads", "Reads of other relays' commits from the store.", value=c.fills
    )
    yield CounterMetricFamily(
        "blindpad_filled_patches",
        "Patches committed by other relays offered here.",
        value=c.filled,
    )


def _verifier(v: Verifier) -> Iterator[Metric]:
    checks = collections.Counter({"helper": v.remote, "loop": v.inline})
    yield _labelled(
        "blindpad_signature_checks",
        "Push signatures checked, by where: the helper process or the event loop.",
        "where",
        checks,
    )
    yield _gauge(
        "blindpad_signature_helper_up", "1 while the signature helper process runs.", int(v.alive)
    )
    yield CounterMetricFamily(
        "blindpad_signature_helpers_lost",
        "Signature helper processes that died, answered nonsense or stalled.",
        value=v.lost,
    )


def _scraped(g: Gauges) -> Iterator[Metric]:
    yield _gauge("blindpad_channels", "Channels in the store.", g.channels)
    yield _gauge("blindpad_live_channels", "Channels with subscribers.", g.live_channels)
    yield _gauge("blindpad_storage_bytes", "Bytes of sealed data stored.", g.storage_bytes)
    counts = [sum(1 for d in g.queue_depths if d <= bound) for bound in QUEUE_BUCKETS]
    yield HistogramMetricFamily(
        "blindpad_outgoing_queue_frames",
        "Frames waiting in each connection's outgoing queue, at this scrape.",
        buckets=[
            *((str(b), c) for b, c in zip(QUEUE_BUCKETS, counts, strict=True)),
            ("+Inf", len(g.queue_depths)),
        ],
        sum_value=sum(g.queue_depths),
    )
    if g.sqlite_synchronous is not None:
        yield _gauge(
            "blindpad_sqlite_synchronous", "PRAGMA synchronous (2 = FULL).", g.sqlite_synchronous
        )


def _gauge(name: str, help_text: str, value: int) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _labelled(
    name: str, help_text: str, label: str, values: collections.Counter[str]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text, labels=[label])
    for key, count in sorted(values.items()):
        family.add_metric([key], count)
    return family


class TimedStore:
    """A store wrapper timing appends into ``blindpad_store_append_seconds``.

    Every other attribute is the wrapped store's (so a method added to
    :class:`relay.store.Store`, or an optional extra such as
    ``observe_commits``, passes through); :meth:`wrap` returns it typed as a
    ``Store``.

    Args:
        store: the store to wrap.
        metrics: where to record.
    """

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    @classmethod
    def wrap(cls, store: Store, metrics: Metrics) -> Store:
        """``store`` with its appends timed."""
        return cast("Store", cls(store, metrics))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def append(
        self, channel_id: bytes, patch_id: bytes, parent_id: bytes, envelope: bytes
    ) -> AppendResult:
        """See :meth:`relay.store.Store.append`; timed."""
        return await self.append_soon(channel_id, patch_id, parent_id, envelope)

    def append_soon(
        self, channel_id: bytes, patch_id: bytes, parent_id: bytes, envelope: bytes
    ) -> asyncio.Future[AppendResult]:
        """See :func:`relay.store.append_soon`; timed."""
        started = self._metrics.clock()
        outcome = append_soon(self._store, channel_id, patch_id, parent_id, envelope)
        observe = self._metrics.store_append.observe
        outcome.add_done_callback(lambda _: observe(self._metrics.clock() - started))
        return outcome
