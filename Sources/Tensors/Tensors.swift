// Module Tensors: see ../shared/docs/design.md.
