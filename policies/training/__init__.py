"""Training of learned policies (`realsim train`): windows from datasets (`data`), the loop with EMA,
checkpoints and periodic evaluation (`trainer`), settings (`config`) and the training figure (`plots`)."""
