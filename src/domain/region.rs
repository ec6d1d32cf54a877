//! AWS region names: syntax only (`us-east-1`, `us-gov-west-1`, `cn-north-1`, `eu-central-2`, ...).
//! Whether a region is configured on a KMS resource is the caller's business.

/// True for names shaped like an AWS region: `<area>[-gov|-iso|-isob]-<direction>-<number>`.
pub fn is_valid_region(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    let (area, rest) = match parts.split_first() {
        Some((area, rest)) => (*area, rest),
        None => return false,
    };
    let rest = match rest.first() {
        Some(&("gov" | "iso" | "isob" | "isoe" | "isof")) => &rest[1..],
        _ => rest,
    };
    let [direction, number] = rest else {
        return false;
    };
    area.len() == 2
        && area.bytes().all(|b| b.is_ascii_lowercase())
        && !direction.is_empty()
        && direction.bytes().all(|b| b.is_ascii_lowercase())
        && !number.is_empty()
        && number.len() <= 2
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// The partition a region belongs to, as its ARNs spell it.
pub fn partition_of(region: &str) -> &'static str {
    match region.split('-').take(2).collect::<Vec<_>>().as_slice() {
        ["cn", ..] => "aws-cn",
        ["us", "gov"] => "aws-us-gov",
        ["us", "iso"] => "aws-iso",
        ["us", "isob"] => "aws-iso-b",
        _ => "aws",
    }
}

/// The regions where AWS KMS serves, per partition, as of this release: what CCKM's account and region
/// lookups list. An account may not have enabled every opt-in region among them.
pub fn kms_regions(partition: &str) -> &'static [&'static str] {
    match partition {
        "aws-us-gov" => &["us-gov-east-1", "us-gov-west-1"],
        "aws-cn" => &["cn-north-1", "cn-northwest-1"],
        _ => &[
            "af-south-1",
            "ap-east-1",
            "ap-east-2",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-northeast-3",
            "ap-south-1",
            "ap-south-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-southeast-3",
            "ap-southeast-4",
            "ap-southeast-5",
            "ap-southeast-7",
            "ca-central-1",
            "ca-west-1",
            "eu-central-1",
            "eu-central-2",
            "eu-north-1",
            "eu-south-1",
            "eu-south-2",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "il-central-1",
            "me-central-1",
            "me-south-1",
            "mx-central-1",
            "sa-east-1",
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::{is_valid_region, partition_of};

    #[test]
    fn regions_belong_to_their_partition() {
        assert_eq!(partition_of("eu-west-1"), "aws");
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of("us-east-1"), "aws");
    }

    #[test]
    fn accepts_real_region_names() {
        for name in [
            "us-east-1",
            "ap-south-1",
            "eu-central-2",
            "us-gov-west-1",
            "cn-northwest-1",
            "us-isob-east-1",
        ] {
            assert!(is_valid_region(name), "{name}");
        }
    }

    #[test]
    fn refuses_malformed_names() {
        for name in [
            "",
            "us",
            "us-east",
            "US-EAST-1",
            "us-east-1a",
            "use1",
            "us--1",
            "us-east-100",
            "us-east-1 ",
        ] {
            assert!(!is_valid_region(name), "{name:?}");
        }
    }
}
