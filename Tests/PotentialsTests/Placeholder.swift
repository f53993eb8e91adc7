// The tests of this target arrive with the issue that builds its module.
