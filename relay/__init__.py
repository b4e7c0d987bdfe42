"""The content-blind relay: orders, stores and forwards sealed patches.

The blind relay proper, where every byte a client sends is handled (audit
these to check what the relay can learn):

* :mod:`relay.connection`: one websocket connection, its protocol state and
  the push pipeline (verify the channel signature, append, ACK, broadcast);
* :mod:`relay.verifier`: pushes' channel signatures checked in a helper
  process, off the event loop;
* :mod:`relay.hub`: live subscriptions per channel, fan-out, bounded outboxes;
* :mod:`relay.live`: stored snapshots sent live to the channel's subscribers;
* :mod:`relay.cluster` and :mod:`relay.bus`: relays sharing one store (hints);
* :mod:`relay.store`: the storage interface and its backends;
* :mod:`relay.limits` and :mod:`relay.metrics`: quotas, rate limits, counters;
* :mod:`relay.errors`: refusals and protocol violations (codes in :mod:`wire`);
* :mod:`relay.http`: health, metrics and the one-shot read endpoints;
* :mod:`relay.app`: the Starlette app factory that wires them together;
* :mod:`relay.cli`: ``blindpad relay`` (serve, backup, seed, check).

The edges, in :mod:`relay.edge`: serving the web page and building its wheel,
seeding pads, fault hooks for tests.  Frames, codes and the history body come
from :mod:`wire`, envelopes are checked with :mod:`crypto`; the relay never
imports the client (tests/test_architecture.py).
"""
