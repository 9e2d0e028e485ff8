"""Tests of the proxy as a public edge: what a hostile client can and cannot make it do."""
