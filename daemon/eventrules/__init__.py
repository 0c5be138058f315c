"""Rules over Kubernetes events and audit events: kube-events' and kube-auditing's.

Pure: ``condition`` compiles the condition language to closures, ``kubeevents`` and
``auditing`` load the two kinds of Rule objects, choose the rules an event matches and
build the alerts; ``files`` reads the YAML. The trio shells (intakes, resolving, sinks)
live elsewhere and call these.
"""
