#!/usr/bin/env bash
# placeholder until written
smoke() { echo "smoke: todo"; }
