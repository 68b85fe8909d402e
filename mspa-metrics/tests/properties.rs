//! Property tests: the full-ranking evaluator and top-K selection agree with a full sort,
//! for random scores with many ties, random targets and training items, both protocols.

use mspa_metrics::{EvalUser, FullRankingEvaluator, Protocol, list_metrics, rouge_l_tokens, top_k};
use proptest::prelude::*;

fn full_ranking(scores: &[f32], excluded: &[usize]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len())
        .filter(|i| !excluded.contains(i))
        .collect();
    idx.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap().then(a.cmp(&b)));
    idx
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn top_k_is_a_sorted_prefix(scores in prop::collection::vec(-3i8..3, 0..60), k in 0usize..70,
                                excl in prop::collection::vec(0usize..60, 0..8)) {
        let scores: Vec<f32> = scores.into_iter().map(f32::from).collect();
        let excl: Vec<usize> = excl.into_iter().filter(|&e| e < scores.len()).collect();
        let full = full_ranking(&scores, &excl);
        prop_assert_eq!(top_k(&scores, k, &excl).unwrap(), full[..k.min(full.len())].to_vec());
    }

    #[test]
    fn evaluator_matches_full_sort(scores in prop::collection::vec(-3i8..3, 1..50),
                                   targets in prop::collection::vec(0usize..50, 0..6),
                                   train in prop::collection::vec(0usize..50, 0..6),
                                   repeats in any::<bool>()) {
        let n = scores.len();
        let scores: Vec<f32> = scores.into_iter().map(f32::from).collect();
        let targets: Vec<usize> = targets.into_iter().map(|t| t % n).collect();
        let train: Vec<usize> = train.into_iter().map(|t| t % n).collect();
        let protocol = if repeats { Protocol::RepeatsAllowed } else { Protocol::NewAuthors };
        let ks = [1, 3, 10];
        let eval = FullRankingEvaluator::new(n, &ks, protocol).unwrap();
        let user = EvalUser { user: 1, targets: targets.clone(), train: train.clone() };
        let report = eval.evaluate_rows(std::slice::from_ref(&user), std::slice::from_ref(&scores)).unwrap();
        if targets.is_empty() {
            prop_assert_eq!(report.users_without_targets, 1);
            prop_assert!(report.per_user.is_empty());
        } else {
            let excluded = if repeats { vec![] } else { train.clone() };
            let full = full_ranking(&scores, &excluded);
            let res = &report.per_user[0];
            prop_assert_eq!(&res.top, &full[..10.min(full.len())].to_vec());
            prop_assert_eq!(&res.all, &list_metrics(&full, &targets, &ks).unwrap());
            let new: Vec<usize> = targets.iter().copied().filter(|t| !train.contains(t)).collect();
            let rep: Vec<usize> = targets.iter().copied().filter(|t| train.contains(t)).collect();
            match &res.new {
                Some(m) => prop_assert_eq!(m, &list_metrics(&full, &new, &ks).unwrap()),
                None => prop_assert!(new.is_empty()),
            }
            match &res.repeat {
                Some(m) => prop_assert_eq!(m, &list_metrics(&full, &rep, &ks).unwrap()),
                None => prop_assert!(rep.is_empty()),
            }
            prop_assert_eq!(report.all.recall(3), Some(res.all.at(3).unwrap().recall));
        }
    }

    #[test]
    fn rouge_l_f_is_symmetric(a in prop::collection::vec("[abc]", 0..12), b in prop::collection::vec("[abc]", 0..12)) {
        let x = rouge_l_tokens(&a, &b);
        let y = rouge_l_tokens(&b, &a);
        prop_assert_eq!(x.precision, y.recall);
        prop_assert!((x.fmeasure - y.fmeasure).abs() < 1e-15);
        prop_assert!(x.fmeasure <= 1.0);
    }
}
