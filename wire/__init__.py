"""blindpad's wire format, shared by client and relay: stdlib only, no I/O.

One package, imported by both ends, so the two cannot drift:

* :mod:`wire.frames`: the websocket frames (docs/PROTOCOL.md §3) as frozen
  dataclasses, and their codec;
* :mod:`wire.codes`: the REFUSE and ERROR code spaces (§5);
* :mod:`wire.history`: the HTTP history body (§4.2);
* :mod:`wire.mmr`: the Merkle mountain range of patch ids (§11);
* :mod:`wire.turns`: who may push next under contention (§13.3);
* :mod:`wire.integrity`: integrity algorithm 2, the content-defined chunk tree (§10.4);
* :mod:`wire.errors`: what the codecs raise, drawn as a tree.

``wire`` imports nothing of blindpad's (not even :mod:`crypto`: envelopes
cross it sealed, as opaque bytes), runs unchanged under Pyodide, and is
imported qualified: ``from wire import frames``.
"""
