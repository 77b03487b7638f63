"""Datasets of teleoperated PushT episodes in LeRobot's v3 layout, with the twin's full state per frame.

``DatasetWriter`` commits episodes crash-safely and resumes; ``DatasetReader`` reads them back;
``validate_dataset`` checks the layout field by field; ``TwinRenderer`` renders image features from the
stored twin state for any viewpoint. See ``_format`` for the layout and the features.
"""

from ._format import (CODEBASE_VERSION, ENV_STATE_NAMES, STATE_NAMES, DatasetError, DatasetSpec, FeatureSpec,
                      pusht_features)
from ._reader import DatasetReader, validate_dataset
from ._add_feature import add_video_feature
from ._writer import DatasetWriter, check_writable

__all__ = ["CODEBASE_VERSION", "DatasetError", "DatasetReader", "DatasetSpec", "DatasetWriter", "ENV_STATE_NAMES",
           "EpisodeRecorder", "FeatureSpec", "STATE_NAMES", "TwinRenderer", "add_video_feature", "check_writable",
           "pusht_features", "replay_episode", "validate_dataset"]


def __getattr__(name: str):
    if name == "TwinRenderer":  # torch and the renderer load only when asked for
        from ._render import TwinRenderer

        return TwinRenderer
    if name == "replay_episode":  # replays through the twin (loads it) only when asked for
        from ._replay import replay_episode

        return replay_episode
    if name == "EpisodeRecorder":  # the live loop's recorder (loads the twin) only when asked for
        from ._recorder import EpisodeRecorder

        return EpisodeRecorder
    raise AttributeError(name)
