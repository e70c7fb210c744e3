"""The paper's experiments (§6.1, §8), one module per section; each returns tidy results.

- :mod:`.verification`: §8.3, is the unlearning error a proxy for the verification error?
"""
