"""Counters for ``GET /metrics`` (Prometheus text exposition format 0.0.4).

Theory of operation
-------------------
One :class:`Metrics` object per app, held in the lifespan state (nothing
global).  The hot path only increments dictionaries; :meth:`Metrics.render`
formats them, with the gauges read from the store at scrape time passed in.
"""

from __future__ import annotations

import collections
import dataclasses

#: Upper bounds of the commit batch size histogram.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


@dataclasses.dataclass
class Metrics:
    """Process-wide counters."""

    connections: int = 0
    connections_total: int = 0
    frames_in: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    frames_out: int = 0
    refusals: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    batch_counts: list[int] = dataclasses.field(default_factory=lambda: [0] * len(BATCH_BUCKETS))
    batch_sum: int = 0
    batch_total: int = 0

    def observe_batch(self, size: int) -> None:
        """Record one commit of ``size`` writes."""
        self.batch_total += 1
        self.batch_sum += size
        for i, bound in enumerate(BATCH_BUCKETS):
            if size <= bound:
                self.batch_counts[i] += 1

    def render(self, *, channels: int, storage_bytes: int, live_channels: int) -> str:
        """Return the exposition text.

        Args:
            channels: channels known to the store.
            storage_bytes: bytes stored.
            live_channels: channels with at least one subscriber here.

        Returns:
            Prometheus text format.
        """
        out = [
            *_gauge("blindpad_connections", "Open websocket connections.", self.connections),
            *_counter(
                "blindpad_connections_total", "Connections accepted.", self.connections_total
            ),
            *_gauge("blindpad_channels", "Channels in the store.", channels),
            *_gauge("blindpad_live_channels", "Channels with subscribers.", live_channels),
            *_gauge("blindpad_storage_bytes", "Bytes of sealed data stored.", storage_bytes),
            *_counter("blindpad_messages_out_total", "Frames sent to clients.", self.frames_out),
        ]
        out += _labelled("blindpad_messages_in_total", "Frames received.", "type", self.frames_in)
        out += _labelled("blindpad_refusals_total", "Refusals.", "reason", self.refusals)
        out += _labelled("blindpad_errors_total", "Fatal errors.", "code", self.errors)
        out += [
            "# HELP blindpad_commit_batch_size Writes per commit.",
            "# TYPE blindpad_commit_batch_size histogram",
        ]
        for bound, count in zip(BATCH_BUCKETS, self.batch_counts, strict=True):
            out.append(f'blindpad_commit_batch_size_bucket{{le="{bound}"}} {count}')
        out.append(f'blindpad_commit_batch_size_bucket{{le="+Inf"}} {self.batch_total}')
        out.append(f"blindpad_commit_batch_size_sum {self.batch_sum}")
        out.append(f"blindpad_commit_batch_size_count {self.batch_total}")
        return "\n".join(out) + "\n"


def _gauge(name: str, help_text: str, value: int) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]


def _counter(name: str, help_text: str, value: int) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"]


def _labelled(
    name: str, help_text: str, label: str, values: collections.Counter[str]
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
    lines += [f'{name}{{{label}="{key}"}} {count}' for key, count in sorted(values.items())]
    return lines
