"""Loaded by every Python process started with this dir on PYTHONPATH (the engine child too):
any socket connection or name lookup raises, so a test proves edgetui works with no network."""

import socket


def _refuse(*args, **kwargs):
    raise OSError("edgetui tried to use the network")


socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
