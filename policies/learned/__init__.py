"""Learned policies: Diffusion Policy and flow matching over action chunks, on the twin's observations.

- `config`: `PolicyConfig` (type, observation, chunking, network, diffusion, flow) and its ``config.json``.
- `features`: inputs selected by dataset feature and element name, computed from the twin's observation.
- `unet`, `generative`, `model`: the FiLM-conditioned 1-D U-Net, DDPM/DDIM and flow-matching heads, and
  the `ChunkModel` that joins them with the normalisation.
- `policy`: `LearnedPolicy`, the batched policy with per-world action-chunk queues.
- `checkpoint`: ``save_pretrained`` / ``load_pretrained`` (config.json, model.safetensors, train_config.json).

Loading this package loads none of its modules; each loads (with torch) when first asked for.
"""

__all__ = ["CheckpointError", "ChunkModel", "LearnedPolicy", "PolicyConfig", "load_pretrained", "save_pretrained"]


def __getattr__(name: str):
    if name in ("CheckpointError", "load_pretrained", "save_pretrained"):
        from . import checkpoint

        return getattr(checkpoint, name)
    if name == "PolicyConfig":
        from .config import PolicyConfig

        return PolicyConfig
    if name == "ChunkModel":
        from .model import ChunkModel

        return ChunkModel
    if name == "LearnedPolicy":
        from .policy import LearnedPolicy

        return LearnedPolicy
    raise AttributeError(name)
