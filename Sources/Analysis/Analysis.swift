// Module Analysis: see ../shared/docs/design.md.
