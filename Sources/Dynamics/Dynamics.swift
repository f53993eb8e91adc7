// Module Dynamics: see ../shared/docs/design.md.
