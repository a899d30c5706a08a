"""The licence service: call apps and their signatures, device licences, registration and authorisation."""
