"""The relay's edges: what it does besides relaying sealed bytes.

None of these is needed to order, store or forward a patch; each is a service
the relay process happens to host, kept here so the blind relay proper
(see :mod:`relay`) stays small enough to audit:

* :mod:`relay.edge.web`: serving the page, Pyodide, libsodium and our wheel
  (gzip-encoded where the browser accepts it);
* :mod:`relay.edge.bundle`: collecting them, from a checkout or from the
  folder a wheel carries (written at build time by ``setup.py``);
* :mod:`relay.edge.wheel`: building that wheel (client, crypto, wire)
  reproducibly, also ``python -m relay.edge.wheel OUTDIR``;
* :mod:`relay.edge.seed`: ``blindpad relay seed``, writing long signed
  histories straight into a store (benchmarks, tests);
* :mod:`relay.edge.faults`: fault hooks, test seams handed to
  :func:`relay.app.create_app` (all ``None`` in production).
"""
