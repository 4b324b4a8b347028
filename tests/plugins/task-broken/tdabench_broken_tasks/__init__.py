"""A broken task plugin: importing it fails, as a plugin with a bug or a missing dependency would."""

raise RuntimeError("this plugin is broken")
