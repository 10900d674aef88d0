//! The prepared spiking neuron against the step rule: the closed-form count where it applies
//! (`0 <= v0 < threshold`, also through the 16 bytes the kernels prepare per layer), the steps
//! elsewhere, inside the model file reader's membrane bound.

use bitspike_core::snn::{current, fire, Closed, Neuron};
use proptest::prelude::*;

/// A neuron's parameters and an accumulator inside the reader's bound:
/// `|v0| + T * |current| + threshold < 2^31`.
fn bounded() -> impl Strategy<Value = (i32, i32, i32, u8, u16, i32)> {
    (
        prop_oneof![1i32..=8, 1i32..=100_000, Just(1 << 20)],
        prop_oneof![-1_000i32..=100_000, Just(0)],
        -50_000i32..=50_000,
        0u8..=8,
        prop_oneof![1u16..=4, 1u16..=64, Just(255), Just(300)],
        -100_000i32..=100_000,
    )
        .prop_filter(
            "inside the membrane bound",
            |&(theta, v0, bias, shift, t, acc)| {
                let i = ((acc as i64) << shift) + bias as i64;
                (v0 as i64).abs() + t as i64 * i.abs() + theta as i64 <= i32::MAX as i64
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn prepared_neuron_counts_like_the_steps((theta, v0, bias, shift, t, acc) in bounded()) {
        let n = Neuron::new(theta, v0, bias, shift, t);
        prop_assert_eq!(n.closed(), 0 <= v0 && v0 < theta);
        let steps = fire(current(acc, shift, bias), v0, theta, t).min(255) as u8;
        prop_assert_eq!(n.count(acc), steps);
        // The closed form the kernels prepare per layer, through its 16 bytes, counts the same.
        prop_assert_eq!(n.closed_form().is_some(), n.closed());
        if let Some(c) = n.closed_form() {
            prop_assert_eq!(Closed::decode(&c.encode()).count(acc), steps);
        }
    }
}

/// At the edges: a potential one below the threshold, currents of exactly the threshold and
/// one more, many steps, and counts above 255 saturating like the steps do.
#[test]
fn prepared_neuron_edges() {
    for theta in [1, 2, 7, 1000] {
        for v0 in [0, theta - 1] {
            for i in [-theta, -1, 0, 1, theta - 1, theta, theta + 1, 3 * theta] {
                for t in [1u16, 2, 3, 255, 300] {
                    let n = Neuron::new(theta, v0, i, 0, t);
                    assert!(n.closed());
                    assert_eq!(
                        n.count(0),
                        fire(i, v0, theta, t).min(255) as u8,
                        "theta {theta} v0 {v0} i {i} t {t}"
                    );
                }
            }
        }
    }
    // Outside 0 <= v0 < theta the steps run.
    assert!(!Neuron::new(10, 10, 0, 0, 3).closed());
    assert!(!Neuron::new(10, -1, 0, 0, 3).closed());
    assert_eq!(
        Neuron::new(10, 25, 0, 0, 3).count(0),
        fire(0, 25, 10, 3) as u8
    );
}
