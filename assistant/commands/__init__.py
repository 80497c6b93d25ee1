"""The core's own ``lepton`` commands that live in the assistant package; each is
registered in pyproject.toml's ``lepton.commands`` entry-point group."""
