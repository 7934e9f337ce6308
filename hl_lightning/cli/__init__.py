"""Small command-line tools: hl-tree, hl-compare, hl-predict."""
