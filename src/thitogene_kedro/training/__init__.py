"""The trainer of the library layer: fold plans, the training loop, checkpoints, trained-model artefacts."""
