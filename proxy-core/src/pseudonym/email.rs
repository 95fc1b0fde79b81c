//! TODO (placeholder until the email module lands)
pub fn parse_address_list(_s: &str) -> Vec<String> {
    Vec::new()
}
