//! The part of upstream's probe worker that turns single results into the published one:
//! a result counts once it has been seen `successThreshold` / `failureThreshold` times in a
//! row; until then the published result stays as it was.

/// Consecutive-result counting with a probe's thresholds (each at least 1).
#[derive(Clone, Debug)]
pub struct Thresholds {
    success: u32,
    failure: u32,
    last: Option<bool>,
    run: u32,
}

impl Thresholds {
    pub fn new(success_threshold: i32, failure_threshold: i32) -> Thresholds {
        Thresholds {
            success: success_threshold.max(1) as u32,
            failure: failure_threshold.max(1) as u32,
            last: None,
            run: 0,
        }
    }

    /// Records one result; returns the result to publish once its run reaches its threshold
    /// (again on every further equal result, as upstream sets it each time).
    pub fn observe(&mut self, success: bool) -> Option<bool> {
        if self.last == Some(success) {
            self.run += 1;
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success { self.success } else { self.failure };
        (self.run >= threshold).then_some(success)
    }

    /// Starts counting afresh (upstream resets the run after a liveness or startup failure,
    /// when the worker goes on hold until the container is replaced).
    pub fn reset(&mut self) {
        self.run = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_counts_after_its_threshold_in_a_row() {
        let mut t = Thresholds::new(2, 3);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None, "a success breaks the failure run");
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), Some(false));
        assert_eq!(t.observe(false), Some(false), "published again while it holds");
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(true), Some(true));
    }

    #[test]
    fn thresholds_of_one_publish_every_result() {
        let mut t = Thresholds::new(1, 1);
        assert_eq!(t.observe(true), Some(true));
        assert_eq!(t.observe(false), Some(false));
        assert_eq!(t.observe(true), Some(true));
    }

    #[test]
    fn zero_thresholds_act_as_one_and_reset_restarts_the_run() {
        let mut t = Thresholds::new(0, 2);
        assert_eq!(t.observe(true), Some(true));
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), Some(false));
        t.reset();
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), Some(false));
    }
}
