"""The formula front end's internals: a tokenizer and recursive-descent parser
(`grammar`), the terms a parsed formula stands for (`terms`) and the design
matrix built from them with NumPy and pandas (`design`). Nothing here evaluates a
user's string as Python: a formula is read into a tree of a few node types, checked against
a fixed list of functions, and computed by this package's own code."""
