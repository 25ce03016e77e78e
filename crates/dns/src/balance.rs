//! k3s's Corefile ends with `loadbalance`: every successful answer has its address records
//! (A, AAAA) and MX records shuffled, so clients that take the first address — most do — spread
//! over a headless Service's endpoints. Order kept otherwise: CNAMEs, other records, addresses,
//! MX (CoreDNS's `roundRobin`).

use hickory_proto::rr::{Record, RecordType};

/// Shuffles one section as CoreDNS's `roundRobin`.
pub(crate) fn shuffle(records: &mut Vec<Record>) {
    if records.len() <= 1 {
        return;
    }
    let is_address = |r: &Record| matches!(r.record_type(), RecordType::A | RecordType::AAAA);
    let first = records[0].record_type();
    if is_address(&records[0]) && records.iter().all(|r| r.record_type() == first) {
        fastrand::shuffle(records);
        return;
    }
    let mut cname = Vec::new();
    let mut address = Vec::new();
    let mut mx = Vec::new();
    let mut rest = Vec::new();
    for record in records.drain(..) {
        match record.record_type() {
            RecordType::CNAME => cname.push(record),
            RecordType::A | RecordType::AAAA => address.push(record),
            RecordType::MX => mx.push(record),
            _ => rest.push(record),
        }
    }
    fastrand::shuffle(&mut address);
    fastrand::shuffle(&mut mx);
    records.extend(cname);
    records.extend(rest);
    records.extend(address);
    records.extend(mx);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME, SRV};
    use hickory_proto::rr::{Name, RData};

    fn a(i: u8) -> Record {
        Record::from_rdata(Name::root(), 5, RData::A(A::new(10, 0, 0, i)))
    }

    #[test]
    fn addresses_are_shuffled_and_kept() {
        let records: Vec<Record> = (1..=8).map(a).collect();
        let mut orders = BTreeSet::new();
        for _ in 0..50 {
            let mut shuffled = records.clone();
            shuffle(&mut shuffled);
            let mut sorted = shuffled.clone();
            sorted.sort_by_key(|r| r.data.to_string());
            assert_eq!(sorted, records);
            orders.insert(shuffled.iter().map(|r| r.data.to_string()).collect::<Vec<_>>());
        }
        assert!(orders.len() > 1, "50 shuffles of 8 records gave one order");
    }

    #[test]
    fn cnames_stay_first_and_others_in_order() {
        let cname = Record::from_rdata(Name::root(), 5, RData::CNAME(CNAME(Name::root())));
        let srv = |p| Record::from_rdata(Name::root(), 5, RData::SRV(SRV::new(0, 50, p, Name::root())));
        let mut records = vec![a(1), srv(1), cname.clone(), a(2), srv(2)];
        shuffle(&mut records);
        assert_eq!(records[0], cname);
        assert_eq!(records[1..3], [srv(1), srv(2)]);
        assert_eq!(records[3..].len(), 2);
    }
}
