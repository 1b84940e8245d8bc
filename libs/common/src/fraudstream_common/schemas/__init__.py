"""Protobuf contracts of every topic and service, generated from proto/."""
