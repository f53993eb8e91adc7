// Module Deck: see ../shared/docs/design.md.
