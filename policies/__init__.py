"""Policies: the interface (``base.Policy``), a registry by name (``registry``), the scripted PushT expert
(``expert``), teleoperation devices (``teleop``), the dataset format policies train on (``dataset``,
LeRobot v3 with the twin's state), and evaluation in parallel twins (``evaluation``)."""
