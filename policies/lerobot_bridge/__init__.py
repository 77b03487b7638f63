"""LeRobot checkpoints in the twin: a policy trained by ``lerobot-train`` (LeRobot 0.4.4) on a realsim
dataset, run by a policy process in LeRobot's own Python environment that the twin talks to over a
local socket (``realsim evaluate --policy lerobot:DIR``, ``realsim deploy --policy lerobot:DIR``).

- `client`: `LeRobotPolicy` (the `policies.base.Policy` the jobs run), `read_checkpoint`, `lerobot_python`;
- `server`: the policy process (standard library, numpy, torch and lerobot only);
- `_wire`: the frames on the socket (JSON header + raw numpy arrays, validated on both sides);
- `_observations`: the twin's observations shaped as the training dataset recorded them.

Importing this package loads none of its modules (and never torch or lerobot).
"""

__all__ = ["LeRobotPolicy", "LeRobotPolicyError", "lerobot_python", "read_checkpoint"]


def __getattr__(name: str):  # noqa: ANN202
    if name in __all__:
        from . import client

        return getattr(client, name)
    raise AttributeError(name)
