fn main() {
    procshare::init();
}
