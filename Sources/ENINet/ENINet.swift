// Module ENINet: see ../shared/docs/design.md.
