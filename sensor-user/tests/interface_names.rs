//! The detection engine dispatches DCE-RPC requests by the interface name the sensor's
//! decoding writes (`DceRpcActivity::interface_name`, from the parsers' table). The two crates
//! do not depend on each other; a name spelt differently in one would send that interface's
//! requests to no detector, silently. This crate sees both.

use dcwatch_detect::detectors::Interface;
use dcwatch_parsers::dcerpc::interfaces::INTERFACES;

#[test]
fn every_interface_the_detectors_read_is_named_as_the_parsers_name_it() {
    for interface in Interface::ALL {
        let name = interface.name();
        assert!(
            INTERFACES.iter().any(|parsed| parsed.name == name),
            "{interface:?}: the parsers name no interface {name:?}"
        );
    }
}
