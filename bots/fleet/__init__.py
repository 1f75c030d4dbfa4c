"""The call fleet: ``botrun serve --queue`` (a stateless front door) and ``botrun worker``
processes on any number of machines, sharing one Redis through the arq job queue."""
