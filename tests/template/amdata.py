"""The example data ``amtool template render`` uses, built with our data model (times omitted)."""

from __future__ import annotations

from daemon.template.data import KV, Alert, Alerts, TemplateData


def amtool_example_data() -> TemplateData:
    """amtool 0.25's built-in render data, field for field except the times."""
    common_labels = {"commonlabelkey1": "commonlabelvalue1", "commonlabelkey2": "commonlabelvalue2"}
    common_ann = {
        "commonannotationkey1": "commonannotationvalue1",
        "commonannotationkey2": "commonannotationvalue2",
    }
    alerts = Alerts(
        [
            Alert(
                Status="alertstatus",
                Labels=KV(
                    {
                        **common_labels,
                        "instance": "foo.bar:1234",
                        "label1": "value1",
                        "label2": "value2",
                    }
                ),
                Annotations=KV({**common_ann, "annotation1": "value1", "annotation2": "value2"}),
                StartsAt=0,
                EndsAt=0,
                GeneratorURL="https://generatorurl.com",
                Fingerprint="fingerprint1",
            ),
            Alert(
                Status="alertstatus",
                Labels=KV({**common_labels, "foo": "bar", "baz": "qux"}),
                Annotations=KV({**common_ann, "aaa": "bbb", "ccc": "ddd"}),
                StartsAt=0,
                EndsAt=0,
                GeneratorURL="https://generatorurl.com",
                Fingerprint="fingerprint2",
            ),
        ]
    )
    return TemplateData(
        Receiver="receiver",
        Status="alertstatus",
        Alerts=alerts,
        GroupLabels=KV(
            {"grouplabelkey1": "grouplabelvalue1", "grouplabelkey2": "grouplabelvalue2"}
        ),
        CommonLabels=KV(common_labels),
        CommonAnnotations=KV(common_ann),
        ExternalURL="https://example.com",
    )
