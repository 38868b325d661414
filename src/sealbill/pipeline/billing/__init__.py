"""Meter → rate → invoice → finalize → render: usage in, numbered documents out."""
