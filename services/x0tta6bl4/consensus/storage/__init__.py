"""Durable storage adapters of the consensus service: the write-ahead log and snapshot files.

This is the imperative shell around the pure Raft core: real files, real fsync.
"""
