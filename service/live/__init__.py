"""The live view in Foxglove (issue 23): the rig's cameras, pose and transforms and its job events,
served over the Foxglove WebSocket protocol by Foxglove's SDK while the service runs.

``server`` starts and stops it (service.capture wires it); ``images``, ``rig`` and ``jobs`` turn
frames, state samples and job changes into the messages of its channels; ``pump`` moves the newest
frames to the encoder thread. Operators' guide: docs/operations/foxglove.md.
"""
