"""The book's own tooling: profiles and the chapters' set-up, results on disk, the chapter runner and
command line, the book's files and links, benchmarks.

Nothing in the library below imports this package. Its heavier dependencies (papermill, nbformat, pyyaml)
come with the ``book`` extra; :mod:`.profiles` and :mod:`.results` need none of them, so a chapter runs
with the lean install.
"""
