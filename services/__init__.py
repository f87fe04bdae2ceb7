"""Agora's services: one package per bounded context, plus the shared chassis.

A service package never imports another service's package; services meet only
through RPC contracts (each package's ``schemas`` module) and events.
"""
