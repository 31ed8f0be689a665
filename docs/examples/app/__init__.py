"""The example app: one upload to its own bucket with the task role's credentials, read back."""
