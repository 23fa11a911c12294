"""mlp_core: the character-level MLP language model of the makemore part 2 lecture, without any UI."""
