use apimachinery::resources::find;
use serde_json::json;

use super::*;

#[test]
fn events_convert_both_ways() {
    let core = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "e", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "p"},
        "message": "Pulled", "reason": "Pulled", "type": "Normal",
        "source": {"component": "kubelet", "host": "n1"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:01Z", "count": 2,
        "reportingComponent": "kubelet", "reportingInstance": "n1",
    });
    let events = find("events.k8s.io", "v1", "events").unwrap();
    let v1 = from_storage(events, core.clone());
    assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
    assert_eq!(v1["regarding"]["name"], "p");
    assert_eq!(v1["note"], "Pulled");
    assert_eq!(v1["deprecatedSource"]["host"], "n1");
    assert_eq!(v1["deprecatedCount"], 2);
    assert_eq!(v1["reportingController"], "kubelet");
    assert!(v1.get("message").is_none() && v1.get("involvedObject").is_none());
    assert_eq!(to_storage(events, v1), core);
    // The core version reads what events.k8s.io wrote.
    let written =
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "note": "n", "regarding": {"name": "x"}});
    let read = from_storage(find("", "v1", "events").unwrap(), written);
    assert_eq!(
        (read["message"].as_str(), read["involvedObject"]["name"].as_str()),
        (Some("n"), Some("x"))
    );
}

#[test]
fn hpa_v1_round_trips_through_v2() {
    let v1 = json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                 "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50},
        "status": {"currentReplicas": 2, "desiredReplicas": 2, "currentCPUUtilizationPercentage": 40},
    });
    let hpa_v1 = find("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
    let stored = to_storage(hpa_v1, v1.clone());
    assert_eq!(stored["apiVersion"], "autoscaling/v2");
    assert_eq!(
        stored["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}])
    );
    assert_eq!(
        stored["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"],
        40
    );
    let mut back = from_storage(hpa_v1, stored);
    // Upstream keeps the current metrics in an annotation even when they are only CPU.
    let annotations = back["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations")
        .unwrap();
    assert_eq!(
        annotations["autoscaling.alpha.kubernetes.io/current-metrics"],
        r#"[{"resource":{"currentAverageUtilization":40,"name":"cpu"},"type":"Resource"}]"#
    );
    assert_eq!(back, v1);
}

#[test]
fn hpa_v2_metrics_beyond_cpu_travel_in_annotations() {
    let v2 = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
                 "metrics": [
                     {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
                     {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
                 ]},
        "status": {"currentReplicas": 1, "desiredReplicas": 1,
                   "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"}]},
    });
    let hpa_v1 = find("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
    let hpa_v2 = find("autoscaling", "v2", "horizontalpodautoscalers").unwrap();
    let v1 = from_storage(hpa_v1, v2.clone());
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 70);
    let annotations = &v1["metadata"]["annotations"];
    let specs: serde_json::Value = serde_json::from_str(
        annotations["autoscaling.alpha.kubernetes.io/metrics"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        specs,
        json!([{"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}}])
    );
    assert!(annotations["autoscaling.alpha.kubernetes.io/conditions"].is_string());
    // Back to v2: the other metric first, then CPU, conditions restored, annotations gone.
    let back = to_storage(hpa_v1, v1);
    assert_eq!(back["spec"]["metrics"], v2["spec"]["metrics"]);
    assert_eq!(back["status"]["conditions"], v2["status"]["conditions"]);
    assert!(back["metadata"].get("annotations").is_none());
    assert_eq!(from_storage(hpa_v2, v2.clone()), v2);
}

#[test]
fn hpa_v1_without_target_gets_the_implicit_cpu_default() {
    let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
                    "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3}});
    let stored = to_storage(find("autoscaling", "v1", "horizontalpodautoscalers").unwrap(), v1);
    assert_eq!(
        stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
}
