"""The simulated workspace (`realsim world`): the stand-in for a real Franka, real cameras and a real T
block, with a domain gap the twin is not told. It plays reality through the same wire protocols as
hardware (the robot bridge and the camera stream); its own control and truth channels
(`sim_workspace.clients`) are for launch/, tests and benchmarks only.

No module of the product (``twin``, ``robot_bridge``, ``policies``, ``calibration``) imports this package
(``tests/test_import_boundaries.py``).

- `sim_workspace.world`: `SimulatedWorld`, `WorldConfig` (domain gap, disturbances, cameras), `draw_truth`.
- `sim_workspace.clients`: `WorldControl` (new episode, nudges, camera stalls), `TruthSubscriber`.
- `sim_workspace.views`: the cameras' frames rendered from the truth with sensor noise.
"""
