"""Perception: what the cameras say about the block, and the twin's estimate of it over time.

- `twin.perception.correction`: the visual-force correction. Per frame set, Gauss-Newton finds the
  block's planar motion that best explains the images (renders of the twin's Gaussians against the
  frames), and spring-dampers pull the twin's block there.
- `twin.perception.localize`: finding the block from scratch (episode start, a lost block).
- `twin.perception.shape_fit`: measuring the real block's dimensions from frames.

Importing this package loads none of them (they load torch); import the module you need.
"""
