// Module Training: see ../shared/docs/design.md.
